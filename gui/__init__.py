"""PartSight's PyQt6 window: it observes the engine (realtime/) and sends it intent."""
