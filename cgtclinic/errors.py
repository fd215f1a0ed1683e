class DomainError(Exception):
    """A business rule refused an action. The message is translated and safe to show to the user."""

    def __init__(self, message, *, code: str = "invalid", field: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field

    def __str__(self) -> str:
        return str(self.message)


class Conflict(DomainError):
    """The request is well formed but clashes with what is already recorded (the API answers 409)."""


class TransitionNotAllowed(Conflict):
    """A state change was asked for from a state that does not allow it."""

    def __init__(self, message):
        super().__init__(message, code="transition_not_allowed")
