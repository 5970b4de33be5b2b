"""Who may do what: users' passwords, API tokens, roles and their permissions."""
