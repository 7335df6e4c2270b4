"""Facial keypoint core: schema, detector, crop geometry, model, overlays and the pipeline.

Imports no Streamlit and no trainer; TensorFlow/Keras load only when a model is built or read.
"""
