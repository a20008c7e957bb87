"""A backend module whose framework is installed but broken: importing it
raises something other than ImportError (a bad build, a missing symbol)."""

raise RuntimeError("libframework.so: undefined symbol: _ZN3foo3barEv")
