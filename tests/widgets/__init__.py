"""A resource family declared outside the app, the way a new one is added: a module."""
