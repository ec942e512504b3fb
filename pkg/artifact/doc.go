// Package artifact converts fitted models to and from the serialised model artifact
// (bullseye.model.v1.ModelArtifact) and scores batches of raw rows with them. Training
// writes artifacts with it; serving loads and scores with it; both therefore apply exactly the
// same preprocessing and arithmetic, and a row scores the same in both (no training/serving
// skew).
//
// # Converting
//
// A [Fitted] is the pkg/ml side: a fitted preprocess.Pipeline, an ml.Model, the model family
// and task, and the raw inputs with their value types. [Encode] turns it into a ModelArtifact
// (preprocessing as FittedPreprocessing, parameters as LinearParameters, KernelSvmParameters or
// NystromParameters) and [Decode] turns an artifact back into a Fitted whose model scores
// every row bit for bit as the original. [Marshal] serialises an artifact deterministically
// with its SHA-256 digest, which the registry stores beside it; [Unmarshal] checks the digest
// before parsing.
//
// # Imported models
//
// [EncodeImported] turns a tree ensemble read from another library's file (gbt.Imported, e.g.
// from gbt.ReadXGBoostJSON) into a GRADIENT_BOOSTED_TREES artifact like a trained one: its
// preprocessing feeds each of the model's features from one raw input, numbers as they are
// and categories as their codes in the list the caller gives ([ImportedInput]), missing
// values kept missing, and its trees record where they came from (ImportedFrom).
//
// # Raw values
//
// A model's raw inputs are typed (common.v1.ValueType). Numbers, whole numbers, bools (0 or
// 1) and times (days before the row's reference time: its cutoff in training, the scoring time
// in serving) are numeric; strings are categorical. [Number], [Category] and [CheckType] are
// the conversions, used by training to build its tables and by the scorer for every row.
// A missing value (nil, or a Value with no kind) is imputed as the artifact says; [Imputes]
// tells whether the model expects an input to be missing (InputColumn.missing), which serving
// enforces. In the rows a Scorer scores, a number that is NaN or infinite is no missing value
// but the row's problem (reason NOT_FINITE, [ErrNotFinite]); in a columnar Table, NaN is the
// missing value.
//
// # Scoring
//
// [NewScorer] loads an artifact into a [Scorer]. A Score call takes a [Batch] of N rows and,
// for feature models, makes one preprocessing pass into one N × D design matrix and one matrix
// operation: a matrix-vector product (gonum's VecDense.MulVec, one Gemv) for the linear
// families, kernel evaluations as matrix products (Gemm) for kernel SVMs and the Nyström
// families. It returns, per row, the raw score, the probability of the positive class when
// the model gives one, the predicted class for binary classifiers and, for linear models on
// request, per-input contributions. A row whose value has the wrong type, or is a NaN or
// infinite number, gets its own Problem; the rest of the batch is scored.
//
// Rows are given either row-major, one *common.v1.Value per input in Info.Inputs order
// (Batch.Add, Batch.AddMap), or columnar as an ml.Table (Batch.Table), e.g. from the typed
// tensors of an Open Inference Protocol request.
//
// The linear hot path allocates nothing per call once its pooled scratch memory and the
// caller's Batch and Result have grown to the batch size: reuse them (Batch.Reset) across
// calls. Kernel models allocate their kernel matrix per call.
//
// # Recommenders
//
// Recommenders (MF_ALS, MF_SGD, IMPLICIT_ALS, BPR and POPULARITY) are pkg/ml/recommend's
// Factors rather than a Fitted. [EncodeFactors] writes them as FactorizationParameters (factor
// matrices and biases as packed little-endian float32 bytes, the seen lists as little-endian
// uint32 bytes, the popularity fallback beside them) or PopularityParameters, and
// [DecodeFactors] reads them back bit for bit. [Decode] refuses them with ErrUnsupported.
//
// NewScorer loads a recommender artifact into a Scorer that also implements [Recommender]:
// serving type-asserts to it. As a Scorer it scores (user, item) pairs added with
// Batch.AddPair (the predicted rating, clipped to the rating range, for explicit models; the
// preference for implicit ones; the item's popularity for POPULARITY), falling back to the
// known biases for unknown users or items; rows of feature values do not fit it. As a
// Recommender it answers top-k queries (recommend.Query: k, allowed and excluded items, seen
// items excluded by default) for a batch of users with one blocked matrix product, unknown
// users getting the popularity ranking, and Predict tells whether a pair was known;
// [PairProblem] gives the Problem of an unknown pair. [NewRecommender] does the same for
// factors that were not encoded.
//
// # Customer lifetime value
//
// A BG_NBD_GAMMA_GAMMA artifact is a [CLVModel] (pkg/ml/clv's BG/NBD and Gamma-Gamma fits,
// the time unit in days, the horizon and which raw input is which): [EncodeCLV] and
// [DecodeCLV] convert it, and NewScorer loads it into a [CLVScorer]. It reads a customer's
// four BTYD values (frequency, recency and age in days, mean repeat value), divides the times
// by the unit and gives per row the named outputs of [CLVSignature] in Result.Outputs
// (expected purchases over the horizon, P(alive), expected order value, CLV), its score the
// CLV. A value no model can take is the row's problem, naming the input ([CLVInputs.Check]).
package artifact
