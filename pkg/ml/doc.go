// Package ml holds the types shared by Bullseye's learning core: the column-typed
// [Table] that preprocessing consumes, the [Model] interface that every fitted model
// implements so that serving can score a batch in one matrix operation, and the
// [Estimator] interface that model selection uses to fit candidates.
//
// The subpackages provide the pieces:
//
//   - preprocess: imputation, standardisation, one-hot and hashed encodings, fitted on
//     training rows and stored as a plain struct;
//   - linear: least squares, ridge, lasso and elastic net regression;
//   - logistic: L2 (trust-region Newton) and L1 (newGLMNET) logistic regression;
//   - svm: linear SVM (dual coordinate descent), kernel SVM (SMO) and Platt scaling;
//   - kernel: kernel functions, batched kernel matrices and the Nyström approximation;
//   - metrics: classification, ranking (top-k), calibration and regression metrics;
//   - selection: cross-validation splitters, hyperparameter search and leaderboards;
//   - recommend: matrix factorisation (ALS, SGD, implicit ALS, BPR), popularity, and
//     batched top-k scoring;
//   - synth: generated interaction data with planted low-rank structure.
//
// Classifiers are binary: labels are 0 (negative) and 1 (positive), and scores are
// larger for the positive class.
package ml
