-- for this transaction only: the append-only triggers let DELETE through
SET LOCAL recon.allow_purge = 'on'
