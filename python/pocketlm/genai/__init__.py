"""Conversion and bundling, mirroring mediapipe.tasks.python.genai:
``converter`` (ConversionConfig, convert_checkpoint) and ``bundler``
(BundleConfig, create_bundle)."""
