"""Facial keypoint core: schema, detector, crop geometry, model, overlays and the pipeline.

No core module imports Streamlit, `trainer` or `pages`, not even inside a function (tests/test_layering.py
imports every core module and calls the functions that import lazily); Keras/TensorFlow load only when a
model is built, read or exported, ONNX Runtime when one is run.
"""
