"""``motionmillion serve``: the HTTP API and the browser studio around a :class:`~motionmillion.pipeline.MotionPipeline`.

- :mod:`~motionmillion.serve.routes`: ``create_app(pipe, config)``, the FastAPI app and its route handlers;
- :mod:`~motionmillion.serve.protocol`: the request and response bodies, the error body;
- :mod:`~motionmillion.serve.serving`: the ``Server`` behind the routes (limits, queue, store, pipeline calls);
- :mod:`~motionmillion.serve.batcher`, :mod:`~motionmillion.serve.worker`, :mod:`~motionmillion.serve.store`:
  dynamic batching, generation processes, generated files on disk;
- :mod:`~motionmillion.serve.cli`, :mod:`~motionmillion.serve.logs`: the command and its log lines;
  ``static/``: the studio page.
"""
