from onnxprobe.runtime.session import Session, SessionCache, create_session, resolve_device

__all__ = ["Session", "SessionCache", "create_session", "resolve_device"]
