"""`partsight batch`: the pipeline of `process` over many videos on a Ray cluster.

inputs: what the command line names, expanded into one BatchInput per video. outputs: each
input's output folder, written under temporary names and renamed when complete, the options'
fingerprint and DIR/manifest.jsonl. worker: what one Ray actor runs (no Ray in it). driver:
the Ray side (imported only by `batch`: the desktop app never needs Ray). cli: the command.
"""
