"""People logging in: password hashing, the login throttle, signed message links, sessions."""
