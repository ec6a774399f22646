"""PartSight engine: sources, models, smoothing, analysis and recording. Never imports Qt."""
