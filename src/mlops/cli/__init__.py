"""The ``mlops`` command line: parse, call the library, format. No logic lives here."""
