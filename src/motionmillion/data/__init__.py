"""Dataset layout (MotionMillion), importers and caption recipes, splits, statistics, packed store."""
