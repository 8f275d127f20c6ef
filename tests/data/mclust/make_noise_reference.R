# Reference figures from R's mclust for its noise component (a uniform density 1/V over the
# data's region added to G Gaussians), for tests/test_reference_noise.py, which reads the CSVs
# written here and never needs R. Run from this folder: Rscript make_noise_reference.R
#
# Data: R's faithful (272 x 2) with 60 points drawn uniformly over its bounding box
# (set.seed(1), rounded to 3 decimals so that the CSV holds exactly the numbers fitted).
#
# Initial noise mask (mclust's documentation suggests prabclus::NNclean, not installed here):
# on the standardised data (scale()), a point is initial noise when the Euclidean distance to
# its 5th nearest neighbour (itself excluded) is in the top 15%, i.e. above the 0.85 quantile
# (type 7) of those distances.
#
# Fits: Mclust(X, G = g, modelNames = model, initialization = list(noise = mask),
# control = emControl(tol = c(1e-11, 1e-11))) for models VVV, EEE, VVI, EII and G = 2, 3.
# Its start is rebuilt here by hand, as mclustBIC and summaryMclustBICn do with a noise mask
# and no subset (n = 332 < mclust.options("subset")): hc(X[-noise, ], modelName = "VVV",
# use = "SVD") on the non-noise rows only, cut by hclass at G; z[-noise, 1:G] = unmap(cut),
# z[noise, G + 1] = 1; then me(X, model, z, Vinv = hypvol(X, reciprocal = TRUE)). The script
# stops unless this hand-built me() gives Mclust's log-likelihood and classification exactly.
#
# Writes:
#   faithful_noise_data.csv            the 332 x 2 data (rows 1-272 faithful, 273-332 noise)
#   faithful_noise_start.csv           per row: init_noise (the mask), the true origin, and the
#                                      start partition per G (0 = noise column, 1..G Gaussians)
#   faithful_noise_em.csv              per model and G: Vinv, hypvol (Mclust's, 1 / Vinv: one
#                                      ulp off hypvol(X) here), loglik, bic (mclust's sign,
#                                      2 loglik - df log n), df, the noise proportion, the
#                                      Gaussians' (";"-separated), me's iteration count, the
#                                      number of rows classified noise, mclust's version
#   faithful_noise_classification.csv  per row, Mclust's classification per model/G (0 = noise)
#   faithful_noise_hypvol.csv          both boxes' volumes, hypvol and Vinv, mclust's version,
#                                      for these data, faithful alone and iris[, 1:4]
suppressMessages(library(mclust))
version <- as.character(packageVersion("mclust"))
tight <- emControl(tol = c(1e-11, 1e-11))
models <- c("VVV", "EEE", "VVI", "EII")
groups <- 2:3
# CSV with every double in full (17 significant digits; write.csv alone keeps 15), unquoted.
write_exact <- function(frame, file) {
  doubles <- vapply(frame, is.double, logical(1))
  frame[doubles] <- lapply(frame[doubles], function(x) sprintf("%.17g", x))
  write.csv(frame, file, row.names = FALSE, quote = FALSE)
}

set.seed(1)
n_noise <- 60
base <- as.matrix(faithful)
noise_points <- apply(base, 2, function(x) round(runif(n_noise, min(x), max(x)), 3))
X <- rbind(base, noise_points)
rownames(X) <- NULL
n <- nrow(X)
write.csv(X, "faithful_noise_data.csv", row.names = FALSE, quote = FALSE)

# hypvol: the smaller of the volumes of the data's bounding box and of the box of its
# principal components' scores (princomp: centred data times the covariance's eigenvectors).
box_volume <- function(m) exp(sum(log(apply(m, 2, function(col) diff(range(col))))))
bounding <- box_volume(X)
principal <- box_volume(princomp(X)$scores)
V <- hypvol(X)
Vinv <- hypvol(X, reciprocal = TRUE)
stopifnot(isTRUE(all.equal(V, min(bounding, principal), tolerance = 1e-14)))
# Also faithful and iris's four measurements alone, where the principal components' box is the
# smaller one (with the uniform points added, the bounding box is).
volumes <- function(name, m) data.frame(
  data = name, bounding_box = box_volume(m), principal_box = box_volume(princomp(m)$scores),
  hypvol = hypvol(m), Vinv = hypvol(m, reciprocal = TRUE), mclust_version = version)
write_exact(rbind(volumes("faithful_noise", X), volumes("faithful", base),
                  volumes("iris", as.matrix(iris[, 1:4]))),
            "faithful_noise_hypvol.csv")

# Initial noise: 5th-nearest-neighbour distance in the top 15%, on the standardised data.
distances <- as.matrix(dist(scale(X)))
kth <- apply(distances, 1, function(d) sort(d)[6])  # sort(d)[1] is the point itself (0)
mask <- kth > quantile(kth, 0.85)
noise <- which(mask)

# mclust's start with a noise mask: hierarchical clustering of the non-noise rows only.
tree <- hc(X[-noise, ], modelName = mclust.options("hcModelName"),
           use = mclust.options("hcUse"))
starts <- list()
for (G in groups) {
  labels <- integer(n)
  labels[-noise] <- hclass(tree, G)
  starts[[paste0("G", G)]] <- labels
}
write.csv(data.frame(init_noise = mask,
                     origin = rep(c("faithful", "uniform"), c(nrow(base), n_noise)),
                     as.data.frame(starts)),
          "faithful_noise_start.csv", row.names = FALSE, quote = FALSE)

rows <- list()
classes <- list()
for (model in models) {
  for (G in groups) {
    fit <- Mclust(X, G = G, modelNames = model, initialization = list(noise = mask),
                  control = tight, verbose = FALSE)
    labels <- starts[[paste0("G", G)]]
    z <- matrix(0, n, G + 1)
    z[cbind(seq_len(n), ifelse(labels == 0, G + 1, labels))] <- 1
    own <- me(X, modelName = model, z = z, Vinv = Vinv, control = tight)
    own_class <- map(own$z)
    own_class[own_class == G + 1] <- 0
    stopifnot(identical(own$loglik, fit$loglik),
              all(own_class == fit$classification),
              isTRUE(all.equal(fit$hypvol, V, tolerance = 1e-14)))
    df <- nMclustParams(model, ncol(X), G, noise = TRUE)
    stopifnot(isTRUE(all.equal(fit$bic, 2 * fit$loglik - df * log(n))))
    pro <- fit$parameters$pro
    rows[[length(rows) + 1]] <- data.frame(
      model = model, G = G, Vinv = fit$parameters$Vinv, hypvol = fit$hypvol,
      loglik = fit$loglik, bic = fit$bic, df = df, noise_pro = pro[G + 1],
      pro = paste(sprintf("%.17g", pro[1:G]), collapse = ";"),
      iterations = attr(own, "info")[["iterations"]],
      n_noise = sum(fit$classification == 0), mclust_version = version)
    classes[[paste0(model, "_G", G)]] <- fit$classification
  }
}
em <- do.call(rbind, rows)
write_exact(em, "faithful_noise_em.csv")
write.csv(as.data.frame(classes), "faithful_noise_classification.csv", row.names = FALSE,
          quote = FALSE)
print(em[, c("model", "G", "loglik", "bic", "noise_pro", "iterations", "n_noise")])
cat("initial noise:", length(noise), "rows; hypvol", format(V, digits = 17),
    "(bounding box", format(bounding, digits = 17), ", principal components",
    format(principal, digits = 17), ")\n")
cat("mclust", version, "\n")
