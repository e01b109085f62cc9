import Foundation

extension PortfolioOptimizer {
    /// Hierarchical risk parity (López de Prado 2016) as PyPortfolioOpt's `HRPOpt`: single
    /// linkage on the correlation distance √((1 − ρ)/2), the assets in the tree's pre-order, then
    /// recursive bisection, each half weighted by the other's inverse-variance cluster variance.
    public func hierarchicalRiskParity() -> [Double] {
        let sigma = model.covariance
        let n = sigma.count
        var distance = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        for i in 0..<n {
            for j in 0..<n {
                let correlation = sigma[i][j] / (sigma[i][i] * sigma[j][j]).squareRoot()
                distance[i][j] = Swift.min(Swift.max((1 - correlation) / 2, 0), 1).squareRoot()
            }
        }
        let order = Self.singleLinkageOrder(distance)
        var weights = [Double](repeating: 1, count: n)
        var clusters = [order]
        while !clusters.isEmpty {
            clusters = clusters.flatMap { cluster -> [[Int]] in
                guard cluster.count > 1 else { return [] }
                return [Array(cluster[0..<(cluster.count / 2)]), Array(cluster[(cluster.count / 2)...])]
            }
            for index in stride(from: 0, to: clusters.count, by: 2) {
                let (first, second) = (clusters[index], clusters[index + 1])
                let (a, b) = (clusterVariance(first), clusterVariance(second))
                let factor = 1 - a / (a + b)
                for asset in first { weights[asset] *= factor }
                for asset in second { weights[asset] *= 1 - factor }
            }
        }
        return weights
    }

    /// The variance of a cluster held in inverse-variance weights.
    func clusterVariance(_ cluster: [Int]) -> Double {
        let inverse = cluster.map { 1 / model.covariance[$0][$0] }
        let total = inverse.reduce(0, +)
        var variance = 0.0
        for (a, i) in cluster.enumerated() {
            for (b, j) in cluster.enumerated() { variance += inverse[a] / total * model.covariance[i][j] * inverse[b] / total }
        }
        return variance
    }

    /// The leaves of the single-linkage tree in pre-order, as SciPy's `linkage(…, "single")`
    /// and `to_tree(…).pre_order()` give them: merges in order of distance (cluster k of n
    /// assets numbered n + k), each merge's children the smaller number first.
    static func singleLinkageOrder(_ distance: [[Double]]) -> [Int] {
        let n = distance.count
        // Prim's minimum spanning tree: single linkage merges its edges in order of length.
        var inTree = [Bool](repeating: false, count: n)
        var best = [Double](repeating: .infinity, count: n)
        var parent = [Int](repeating: -1, count: n)
        var edges: [(a: Int, b: Int, length: Double)] = []
        best[0] = 0
        for _ in 0..<n {
            var next = -1
            for i in 0..<n where !inTree[i] && (next < 0 || best[i] < best[next]) { next = i }
            inTree[next] = true
            if parent[next] >= 0 { edges.append((parent[next], next, best[next])) }
            for i in 0..<n where !inTree[i] && distance[next][i] < best[i] {
                best[i] = distance[next][i]
                parent[i] = next
            }
        }
        edges.sort { $0.length < $1.length }
        var root = Array(0..<n)
        func find(_ x: Int) -> Int {
            var x = x
            while root[x] != x { x = root[x] }
            return x
        }
        var clusterOf = Array(0..<n)  // the cluster number standing for each union-find root
        var children: [Int: (Int, Int)] = [:]
        for (index, edge) in edges.enumerated() {
            let (ra, rb) = (find(edge.a), find(edge.b))
            let (ca, cb) = (clusterOf[ra], clusterOf[rb])
            let merged = n + index
            children[merged] = (Swift.min(ca, cb), Swift.max(ca, cb))
            root[rb] = ra
            clusterOf[ra] = merged
        }
        var order: [Int] = []
        var stack = [n + edges.count - 1]
        while let node = stack.popLast() {
            if let (left, right) = children[node] {
                stack.append(right)
                stack.append(left)
            } else {
                order.append(node)
            }
        }
        return order
    }

    /// Black–Litterman's posterior (He and Litterman 1999, PyPortfolioOpt's defaults): the
    /// market-implied prior π = δΣw_mkt + r_f from market capitalisations, absolute views Q on
    /// some assets, τ = 0.05, Ω = diag(τPΣPᵀ); posterior returns π + τΣPᵀ(PτΣPᵀ + Ω)⁻¹(Q − Pπ)
    /// and covariance Σ + τΣ − τΣPᵀ(PτΣPᵀ + Ω)⁻¹PτΣ.
    /// - Throws: `PortfolioError` for caps that are not positive, or views on unknown assets.
    public static func blackLitterman(
        _ model: RiskModel, marketCaps: [Double], views: [Int: Double], riskAversion: Double, riskFree: Double = 0,
        tau: Double = 0.05
    ) throws -> RiskModel {
        let n = model.symbols.count
        guard marketCaps.count == n, marketCaps.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw PortfolioError("Black-Litterman needs a positive market cap for each of the \(n) assets")
        }
        guard !views.isEmpty, views.keys.allSatisfy({ (0..<n).contains($0) }), views.values.allSatisfy(\.isFinite) else {
            throw PortfolioError("Black-Litterman needs at least one view, each on one of the assets")
        }
        let sigma = model.covariance
        let total = marketCaps.reduce(0, +)
        let market = marketCaps.map { $0 / total }
        let prior = (0..<n).map { i in riskAversion * (0..<n).reduce(0) { $0 + sigma[i][$1] * market[$1] } + riskFree }
        let viewed = views.keys.sorted()
        let k = viewed.count
        // τΣPᵀ is n × k: column v is τ times Σ's column of the viewed asset.
        let tauSigmaP = (0..<n).map { i in viewed.map { tau * sigma[i][$0] } }
        // A = PτΣPᵀ + Ω, Ω = diag(τPΣPᵀ).
        var a = viewed.map { row in viewed.map { tau * sigma[row][$0] } }
        for v in 0..<k { a[v][v] += tau * sigma[viewed[v]][viewed[v]] }
        let gap = viewed.map { views[$0]! - prior[$0] }
        let solution = try solve(a, gap)
        let posterior = (0..<n).map { i in prior[i] + (0..<k).reduce(0) { $0 + tauSigmaP[i][$1] * solution[$1] } }
        // M = τΣ − τΣPᵀ A⁻¹ PτΣ (PτΣ = (τΣPᵀ)ᵀ).
        var covariance = sigma
        for column in 0..<n {
            let right = try solve(a, (0..<k).map { tauSigmaP[column][$0] })
            for row in 0..<n {
                let correction = (0..<k).reduce(0) { $0 + tauSigmaP[row][$1] * right[$1] }
                covariance[row][column] += tau * sigma[row][column] - correction
            }
        }
        return RiskModel(symbols: model.symbols, expectedReturns: posterior, covariance: covariance)
    }

    /// x with A·x = b (Gaussian elimination with partial pivoting).
    static func solve(_ a: [[Double]], _ b: [Double]) throws -> [Double] {
        var m = a
        var x = b
        let n = b.count
        for column in 0..<n {
            guard let pivot = (column..<n).max(by: { Swift.abs(m[$0][column]) < Swift.abs(m[$1][column]) }),
                Swift.abs(m[pivot][column]) > 1e-300
            else { throw PortfolioError("the views' system is singular") }
            m.swapAt(column, pivot)
            x.swapAt(column, pivot)
            for row in (column + 1)..<n {
                let factor = m[row][column] / m[column][column]
                for j in column..<n { m[row][j] -= factor * m[column][j] }
                x[row] -= factor * x[column]
            }
        }
        for row in stride(from: n - 1, through: 0, by: -1) {
            var value = x[row]
            for j in (row + 1)..<n { value -= m[row][j] * x[j] }
            x[row] = value / m[row][row]
        }
        return x
    }
}
