"""Developer tools for onnxprobe (model training and export).

These scripts may use torch; the onnxprobe runtime never imports them.
"""
