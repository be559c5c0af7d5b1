"""A realistic partner API (an ERP's sales-order API, OpenAPI 3.0) in two versions."""

from __future__ import annotations

ERP_V1 = """\
openapi: 3.0.3
info: {title: ERP Sales API, version: 1.4.0}
servers: [{url: https://erp.example.com/api}]
paths:
  /sales-orders:
    post:
      operationId: createSalesOrder
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/SalesOrder'}
      responses:
        '201':
          description: created
          content:
            application/json:
              schema: {$ref: '#/components/schemas/SalesOrderCreated'}
        '422': {description: rejected}
  /sales-orders/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    get:
      operationId: getSalesOrder
      responses:
        '200':
          description: the order
          content:
            application/json:
              schema: {$ref: '#/components/schemas/SalesOrderCreated'}
  /customers:
    get:
      operationId: listCustomers
      responses:
        '200': {description: customers}
components:
  schemas:
    Customer:
      type: object
      required: [name, email, country]
      properties:
        name: {type: string, maxLength: 80}
        email: {type: string, format: email}
        country: {type: string, pattern: '^[A-Z]{2}$'}
    SalesOrder:
      type: object
      required: [external_ref, customer, order_date, amount, status, erp_status]
      properties:
        external_ref: {type: string}
        customer: {$ref: '#/components/schemas/Customer'}
        order_date: {type: string, format: date}
        currency: {type: string, enum: [EUR, USD, GBP, CHF], nullable: true}
        amount: {type: number, minimum: 0}
        status: {type: string}
        erp_status: {type: string, enum: [RELEASED, COMPLETED, CANCELLED, ON_HOLD]}
    SalesOrderCreated:
      type: object
      properties:
        id: {type: string}
        external_ref: {type: string}
        erp_status: {type: string}
        created_at: {type: string, format: date-time}
"""

# Version 2: the customer's e-mail moves to a required contact block, the ON_HOLD status and
# GBP go, amounts become strings, created_at is no longer returned, the customer list is gone
# and reading an order needs a company header.
ERP_V2 = (
    ERP_V1.replace("version: 1.4.0", "version: 2.0.0")
    .replace(
        "      required: [name, email, country]\n      properties:\n"
        "        name: {type: string, maxLength: 80}\n"
        "        email: {type: string, format: email}\n",
        "      required: [name, contact, country]\n      properties:\n"
        "        name: {type: string, maxLength: 80}\n"
        "        contact:\n          type: object\n          required: [email]\n"
        "          properties: {email: {type: string}, phone: {type: string}}\n",
    )
    .replace("enum: [EUR, USD, GBP, CHF]", "enum: [EUR, USD, CHF]")
    .replace("amount: {type: number, minimum: 0}", "amount: {type: string}")
    .replace(
        "erp_status: {type: string, enum: [RELEASED, COMPLETED, CANCELLED, ON_HOLD]}",
        "erp_status: {type: string, enum: [RELEASED, COMPLETED, CANCELLED]}",
    )
    .replace("        created_at: {type: string, format: date-time}\n", "")
    .replace(
        "  /customers:\n    get:\n      operationId: listCustomers\n"
        "      responses:\n        '200': {description: customers}\n",
        "",
    )
    .replace(
        "    get:\n      operationId: getSalesOrder\n",
        "    get:\n      operationId: getSalesOrder\n      parameters:\n"
        "        - {name: x-company, in: header, required: true, schema: {type: string}}\n",
    )
)
