"""One small module per external system; every call goes through a function that logs it."""
