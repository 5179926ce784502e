"""Sign-up requests, their approval and the activation of accounts (issue 13)."""
