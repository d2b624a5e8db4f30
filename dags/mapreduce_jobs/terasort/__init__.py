"""TeraSort over 100-byte records: a generator (teragen.py) and a validator (validate.py)."""
