"""What the tests and the benchmarks share (testing/README.md): local stand-ins for the cloud
services on 127.0.0.1, the prediction function served as functions-framework serves it, and
crafted prediction-log rows. Product code never imports this package; it never imports
benchmarks/, tests/ or experiments/.
"""
