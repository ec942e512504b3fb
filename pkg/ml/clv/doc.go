// Package clv models customer lifetime value the way the "buy 'til you die" literature
// does, on a purchase log summarised per customer. [Summarize] turns a purchase log into
// the recency–frequency–monetary summary that the models take (the definitions of
// Python's lifetimes package), and [HoldoutPurchases] counts purchases in a later
// window for validation. [Hyp2F1] is the Gauss hypergeometric function that the BG/NBD
// predictions need.
package clv
