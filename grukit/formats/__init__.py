"""Other formats: gate orders, Keras layers and files, ONNX."""
