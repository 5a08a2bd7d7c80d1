import CommerceAPI
import Events
import Hummingbird
import SQLStore
import ServiceRuntime

/// `POST /products`, `GET /products/{id}`, `POST /users/{id}/cart`, `GET /users/{id}/cart`.
public enum ProductAPI {
    struct NewProduct: Codable {
        let name: String
        let price: Int64
        let stock: Int64
    }

    struct Product: Codable, Sendable {
        let id: Int64
        let name: String
        let price: Int64
        let stock: Int64
    }

    struct CartLine: Codable, Sendable {
        let productId: Int64
        let quantity: Int64
    }

    struct Cart: Codable, Sendable {
        let userId: Int64
        let items: [CartLine]
    }

    /// What a name must hold something besides: ECMAScript's whitespace and line terminators,
    /// the set of `\s` in the document's pattern for `name`, which counts code points as JSON
    /// Schema does (not grapheme clusters, as `String.count` would).
    static let blank: Set<Unicode.Scalar> = [
        "\u{09}", "\u{0A}", "\u{0B}", "\u{0C}", "\u{0D}", " ", "\u{A0}", "\u{1680}", "\u{2000}", "\u{2001}", "\u{2002}", "\u{2003}",
        "\u{2004}", "\u{2005}", "\u{2006}", "\u{2007}", "\u{2008}", "\u{2009}", "\u{200A}", "\u{2028}", "\u{2029}", "\u{202F}",
        "\u{205F}", "\u{3000}", "\u{FEFF}",
    ]

    public static func register(on router: Router<CommerceContext>, node: ServiceNode) {
        router.post("/products") { request, context -> Response in
            try context.requireOperator(to: "create products")
            let post = try await Post(NewProduct.self, from: request)
            let new = post.body
            guard (1...200).contains(new.name.unicodeScalars.count), new.name.unicodeScalars.contains(where: { !blank.contains($0) }) else {
                throw APIError.badRequest("name must be 1-200 characters (code points), not only whitespace")
            }
            // PostgreSQL refuses U+0000 in text; fields the API ignores may hold anything.
            guard !new.name.unicodeScalars.contains("\0") else { throw APIError.badRequest("name may not contain U+0000") }
            guard new.price > 0, new.price <= 1_000_000_000 else { throw APIError.badRequest("price must be 1-1000000000, got \(new.price)") }
            guard new.stock >= 0, new.stock <= 1_000_000_000 else { throw APIError.badRequest("stock must be 0-1000000000, got \(new.stock)") }
            return try await node.respond(to: post, status: .created) { db in
                let id = try db.insert("INSERT INTO products (name, price, stock) VALUES (?, ?, ?)", new.name, new.price, new.stock)
                return (Product(id: id, name: new.name, price: new.price, stock: new.stock), [])
            }
        }

        router.get("/products/:productId") { _, context -> Response in
            let id = try context.id("productId")
            _ = try context.caller()
            guard let product = try await node.read({ db in try fetchProduct(id, db) }) else {
                throw APIError.notFound("product \(id) does not exist")
            }
            return try JSON.response(product)
        }

        router.post("/users/:userId/cart") { request, context -> Response in
            let userId = try context.id("userId")
            try context.requireActing(for: userId)
            let post = try await Post(CartLine.self, from: request)
            let line = post.body
            guard line.quantity > 0, line.quantity <= 1_000_000 else { throw APIError.badRequest("quantity must be 1-1000000, got \(line.quantity)") }
            return try await node.respond(to: post) { db in
                guard try fetchProduct(line.productId, db) != nil else { throw APIError.notFound("product \(line.productId) does not exist") }
                try ProductService.setCartLine(of: userId, product: line.productId, db) { current in
                    let (total, overflow) = current.addingReportingOverflow(line.quantity)
                    guard !overflow else {
                        throw APIError.conflict(
                            "cart_overflow",
                            "cart of user \(userId) holds \(current) of product \(line.productId); \(line.quantity) more would overflow")
                    }
                    return total
                }
                return (try fetchCart(userId, db), [])
            }
        }

        router.get("/users/:userId/cart") { _, context -> Response in
            let userId = try context.id("userId")
            try context.requireActing(for: userId)
            return try JSON.response(try await node.read { db in try fetchCart(userId, db) })
        }
    }

    static func fetchProduct(_ id: Int64, _ db: any SQLDatabase) throws -> Product? {
        try db.row("SELECT * FROM products WHERE id = ?", id).map {
            try Product(id: $0["id"], name: $0["name"], price: $0["price"], stock: $0["stock"])
        }
    }

    static func fetchCart(_ userId: Int64, _ db: any SQLDatabase) throws -> Cart {
        let lines = try db.rows("SELECT product_id, quantity FROM cart_items WHERE user_id = ? ORDER BY product_id", userId)
            .map { try CartLine(productId: $0["product_id"], quantity: $0["quantity"]) }
        return Cart(userId: userId, items: lines)
    }
}
