"""Tasks beyond image-to-image: what a model's outputs mean, and how they are decoded and drawn.

``ultralytics_model`` loads a ``best.pt`` / YOLO YAML and cuts its head for RVC2,
``heads`` writes the NN Archive heads (luxonis-ml's schema), ``decode`` turns raw outputs
into boxes/labels with depthai-nodes' parsers, ``draw`` paints them and ``results`` writes
them as JSON lines.
"""
