"""The reference shop: five services that talk only through Tidings events.

`contracts` is the published language every service imports; `orders`, `inventory`, `payments`,
`shipping` and `notifications` each own a database no other service reads. `shop` (this
package's `cli`) starts them as processes, drives load through the orders HTTP API and checks
the cross-service invariants afterwards.
"""
