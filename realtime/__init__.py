"""PartSight engine: sources, models, smoothing, analysis and recording. Never imports Qt."""
import os

# The engine's own threads (capture, decode, stages, encoding) share the cores with PyTorch's
# OpenMP workers; spinning idle workers would take those cores from them, and on a busy machine a
# spinning team waits on preempted members (measured on 2 loaded cores: 1.85 s per BodyPix forward
# spinning, 0.10 s sleeping). Set before PyTorch loads its OpenMP runtime; a user's value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
