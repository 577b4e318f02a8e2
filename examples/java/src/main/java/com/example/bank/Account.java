package com.example.bank;

public class Account {
    private final String owner;
    private int balance;

    public Account(String owner, int balance) {
        this.owner = owner;
        this.balance = balance;
    }

    public int deposit(int amount) {
        if (amount <= 0) {
            throw new IllegalArgumentException("amount must be positive");
        }
        balance += amount;
        return balance;
    }

    public int getBalance() {
        return balance;
    }
}
