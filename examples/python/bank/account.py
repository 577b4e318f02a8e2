"""A tiny bank account, the example unitune's README writes tests for."""


class InsufficientFunds(Exception):
    """Raised when a withdrawal is larger than the balance."""


class Account:
    interest_rate = 0.01

    def __init__(self, owner: str, balance: int = 0):
        self.owner = owner
        self.balance = balance

    def deposit(self, amount: int) -> int:
        if amount <= 0:
            raise ValueError("amount must be positive")
        self.balance += amount
        return self.balance

    def withdraw(self, amount: int) -> int:
        if amount > self.balance:
            raise InsufficientFunds(f"{self.owner} has only {self.balance}")
        self.balance -= amount
        return self.balance


def add(a: int, b: int) -> int:
    return a + b
