"""The portal's services (writes). Sub-modules by journey: sign-in and links (``auth``),
sessions, factors, impersonation; counters in ``limits``."""
