"""A test-only app: a team that owns a Plugipay customer (billing owners other than users)."""
