"""How long work reports how far it got: a callback of (events done, events in all), which
the command line turns into a progress bar. Its own module, so the projection and the
replay it starts share it without importing each other."""

from collections.abc import Callable

Progress = Callable[[int, int], None]
