"""B2B EDI gateway: receive, translate and deliver EDI durably."""
