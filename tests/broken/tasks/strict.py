"""A function with a real signature, for the corpus files about arguments."""


def fetch(city, days=7):
    raise AssertionError("validate must not call a task")
