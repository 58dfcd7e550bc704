"""Compilers other than the default offline one (``oakpipe.toolchain``); each is opt-in."""
