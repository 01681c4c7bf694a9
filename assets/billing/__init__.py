"""The billing service: daily renewals → invoices → charges → dunning (schema `billing`)."""
