"""The service layer: what the CLI and the HTTP server call, one function per use case.

Services open the stores, call the domain and return plain results; they never print.
"""
