"""Export stage: ONNX export, int8 quantization, accuracy gate, bundles, artifact store."""
