"""Billing service: invoices (lines, totals, payment attempts), proration charges, operators'
void and pay."""
