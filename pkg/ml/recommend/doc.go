// Package recommend fits and serves recommenders: matrix factorisation for ratings and for
// behaviour, a popularity baseline, their evaluation by ranking metrics, and model selection.
//
// Data is [Interactions]: one value per (user, item) pair, as the feature service's
// ExportInteractions streams it, with splits by a seeded hash of the pair, by time, or each
// user's latest pairs. The estimators ([Estimator]) are
//
//   - [ALS]: biased matrix factorisation of ratings by alternating least squares with
//     weighted-λ regularisation (MF_ALS);
//   - [SGD]: the same model by stochastic gradient descent, Funk's and Koren's "SVD" (MF_SGD);
//   - [ImplicitALS]: weighted ALS for implicit feedback with confidence 1 + α·r, each user and
//     item solved by conjugate gradient (IMPLICIT_ALS);
//   - [BPR]: Bayesian personalised ranking (BPR);
//   - [Popular]: items by popularity (POPULARITY), also every model's answer for unknown
//     users.
//
// Each returns [Factors], a plain value whose fields map one to one onto the
// FactorizationParameters message of bullseye.model.v1, with the solver's convergence. A
// [Scorer] built from it serves recommendations: Recommend scores a batch of users against
// every item in one blocked float32 matrix product (an AVX2/FMA micro-kernel on amd64, portable
// Go elsewhere and with the purego build tag), each block scanned by a per-user top-k heap that
// skips seen and filtered-out items; RecommendOne is the one-user path (one Sgemv). [Evaluate]
// measures RMSE, MAE and, at each cut-off k, precision, recall, NDCG, MAP, MRR and catalogue
// coverage (see metrics.MeanTopK); [Search] cross-validates candidates from [Families] over
// interaction rows and refits the best, with selection's leaderboard rows.
//
// Solvers follow the rest of pkg/ml: the zero value of each is its family's defaults,
// iterations and a tolerance bound them, a seed fixes the result whatever GOMAXPROCS, and
// ALS and implicit ALS run users (then items) in parallel on up to GOMAXPROCS goroutines.
package recommend
