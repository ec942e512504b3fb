// Package clv models customer lifetime value the way the "buy 'til you die" literature
// does, on a purchase log summarised per customer:
//
//   - [Summarize] turns a purchase log into the recency–frequency–monetary summary that
//     the models take (the definitions of Python's lifetimes package), and
//     [HoldoutPurchases] counts purchases in a later window for validation;
//   - [FitBGNBD] fits the BG/NBD model of repeat purchasing (Fader, Hardie and Lee 2005,
//     "Counting your customers the easy way") by maximum likelihood, and
//     [BGNBDParams] predicts from it: expected purchases of a customer in a coming
//     period, the probability that a customer is still active, and the population's
//     cumulative repeat-purchase curve;
//   - [FitGammaGamma] fits the Gamma-Gamma model of spend per purchase (Fader and Hardie
//     2013, "The Gamma-Gamma model of monetary value"; Colombo and Jiang 1999), and
//     [GammaGammaParams] gives a customer's expected average order value;
//   - [CLV] combines the two into a discounted value over a horizon in months, as
//     lifetimes' customer_lifetime_value does;
//   - [Hyp2F1] is the Gauss hypergeometric function the BG/NBD predictions need.
//
// Fits maximise the log-likelihood over the logarithms of the parameters (so they stay
// positive) with gonum's L-BFGS and analytic gradients, then polish the optimum with a
// few Newton steps, which use no function values and so converge past the rounding
// noise of the log-likelihood. Standard errors come from the observed information, the
// Hessian of the negative log-likelihood at the optimum in the natural parameters,
// differenced from the analytic gradient.
//
// Times in a [Customer] (Recency, T) are in one unit chosen at [Summarize]; the fitted
// parameters α (BG/NBD) and the horizons t of the predictions are in the same unit.
package clv
