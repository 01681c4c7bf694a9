"""Customer service: who pays. Postgres is the truth; Redis a read-through cache."""
