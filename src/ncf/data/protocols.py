"""The test protocols' names and default shares, apart from the code that cuts them
(:mod:`ncf.data.holdout`), so the command line's parser reads them without numpy."""

#: The rating task's protocols.
PROTOCOLS = RATING_PROTOCOLS = ("folds", "random", "per-user")
#: The implicit task's protocols (the first is the default).
IMPLICIT_PROTOCOLS = ("loo", "random", "time")
#: Share held out for testing by the rating task's ``random`` and ``per-user`` protocols.
TEST_RATIO = 0.1
#: Share held out by the implicit task's ``random`` and ``time`` protocols, unless given.
IMPLICIT_TEST_FRACTION = 0.2

__all__ = [
    "IMPLICIT_PROTOCOLS",
    "IMPLICIT_TEST_FRACTION",
    "PROTOCOLS",
    "RATING_PROTOCOLS",
    "TEST_RATIO",
]
