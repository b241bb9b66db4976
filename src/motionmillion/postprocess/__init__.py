"""Foot contact, foot-sliding removal, smoothing and floor alignment."""
