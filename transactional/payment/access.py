"""Who may touch which customer's money: the shared tenancy rule, as dependencies."""

from __future__ import annotations

from transactional.common import tenancy
from transactional.common.security import require

# Module-level so tests can swap them with app.dependency_overrides.
WRITE = tenancy.member("payments:write")
READ = tenancy.member("payments:read")
OPERATOR = require("operations", "internal")
