"""Export stage: ONNX export, int8 quantization, accuracy gate, bundles, publishing to the artifact
store (packages/artifact_store)."""
