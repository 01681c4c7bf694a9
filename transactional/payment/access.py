"""Who may touch which customer's money: the shared tenancy rule, as dependencies."""

from __future__ import annotations

from transactional.common import tenancy

# Module-level so tests can swap them with app.dependency_overrides.
WRITE = tenancy.member("payments:write")
READ = tenancy.member("payments:read")
