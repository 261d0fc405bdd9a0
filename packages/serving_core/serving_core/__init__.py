"""The serving core: one model code for the prediction function and the batch scoring job.

``bundle`` finds a bundle (local folder, ``gs://`` prefix or production pointer), fetches it and
verifies every file against its manifest; ``model`` holds the tokenizer, the onnxruntime session,
the calibration, the decision threshold and the out-of-domain score. Both deployables call the
same ``Model.predict``, so a text scored online and in a batch gets the same answer.

Nothing is process-wide: each ``Model`` owns its session, and bundles are cached by version, so
two bundles can be loaded side by side. Heavy imports (onnxruntime, google-cloud-storage) happen
on first use, never at import.
"""
