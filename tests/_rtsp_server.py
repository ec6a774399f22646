"""A real RTSP server for the tests: GStreamer's gst-rtsp-server, run by the system python3 (it
needs PyGObject: Debian's python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-good).

    python3 _rtsp_server.py PORT CLIP.mp4 [USER PASSWORD]   serves CLIP (H.264 MP4) at
                                                            rtsp://127.0.0.1:PORT/clip, in real time
    python3 _rtsp_server.py --check                          exit 0 when all of that is installed

It prints "ready" once it listens. Every client gets the clip from its start.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

ELEMENTS = ("filesrc", "qtdemux", "rtph264pay")


def serve(port: str, clip: str, credentials: list[str]) -> None:
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f'( filesrc location="{clip}" ! qtdemux ! rtph264pay name=pay0 pt=96 config-interval=-1 )')
    if credentials:
        role = "viewer"
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", role)
        auth = GstRtspServer.RTSPAuth()
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(*credentials), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role(role, "media.factory.access", True)
        permissions.add_permission_for_role(role, "media.factory.construct", True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory("/clip", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    Gst.init(None)
    missing = [name for name in ELEMENTS if Gst.ElementFactory.find(name) is None]
    if sys.argv[1:] == ["--check"]:
        sys.exit(f"missing GStreamer elements: {', '.join(missing)}" if missing else 0)
    serve(sys.argv[1], sys.argv[2], sys.argv[3:5])
