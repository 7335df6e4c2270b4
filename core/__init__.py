"""Facial keypoint core: schema, detector, crop geometry, model, overlays and the pipeline.

Inference only: no core module imports Streamlit, `trainer`, `pages`, Keras or TensorFlow, not even inside
a function (tests/test_layering.py reads every import and runs them). Models run as ONNX twins through ONNX
Runtime; the trainer builds, trains and exports them (trainer.architecture, trainer.export).
"""
