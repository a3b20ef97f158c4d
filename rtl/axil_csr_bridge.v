// axil_csr_bridge -- AXI4-Lite slave to the engine's register-file CSR port.
//
// Synthesizable Verilog-2005. One transaction at a time per direction; a
// write and a read that become ready in the same cycle are served write
// first. Only full 32-bit accesses are meaningful: WSTRB is ignored (a
// partial write writes the whole word). Responses are always OKAY; an access
// to an unmapped offset is reported by the engine's ERRORS.BAD_CSR instead.
// AWPROT / ARPROT are not used and not ports.
`timescale 1ns / 1ps
`default_nettype none

module axil_csr_bridge (
    input  wire        clk,
    input  wire        rst,          // synchronous, active high

    // AXI4-Lite slave
    input  wire [7:0]  s_axil_awaddr,
    input  wire        s_axil_awvalid,
    output wire        s_axil_awready,
    input  wire [31:0] s_axil_wdata,
    input  wire        s_axil_wvalid,
    output wire        s_axil_wready,
    output reg         s_axil_bvalid,
    input  wire        s_axil_bready,
    output wire [1:0]  s_axil_bresp,
    input  wire [7:0]  s_axil_araddr,
    input  wire        s_axil_arvalid,
    output wire        s_axil_arready,
    output reg  [31:0] s_axil_rdata,
    output reg         s_axil_rvalid,
    input  wire        s_axil_rready,
    output wire [1:0]  s_axil_rresp,

    // engine CSR port
    output reg  [7:0]  csr_addr,
    output reg         csr_we,
    output reg  [31:0] csr_wdata,
    output reg         csr_re,
    input  wire [31:0] csr_rdata
);
    reg        aw_full, w_full, ar_full, r_wait;
    reg [7:0]  aw_addr, ar_addr;
    reg [31:0] w_data;

    assign s_axil_awready = ~aw_full;
    assign s_axil_wready  = ~w_full;
    assign s_axil_arready = ~ar_full;
    assign s_axil_bresp   = 2'b00;
    assign s_axil_rresp   = 2'b00;

    wire do_write = aw_full & w_full & ~s_axil_bvalid;
    wire do_read  = ~do_write & ar_full & ~r_wait & ~s_axil_rvalid;

    always @(posedge clk) begin
        if (rst) begin
            aw_full       <= 1'b0;
            w_full        <= 1'b0;
            ar_full       <= 1'b0;
            r_wait        <= 1'b0;
            s_axil_bvalid <= 1'b0;
            s_axil_rvalid <= 1'b0;
            s_axil_rdata  <= 32'd0;
            csr_we        <= 1'b0;
            csr_re        <= 1'b0;
            csr_addr      <= 8'd0;
            csr_wdata     <= 32'd0;
            aw_addr       <= 8'd0;
            ar_addr       <= 8'd0;
            w_data        <= 32'd0;
        end else begin
            csr_we <= 1'b0;
            csr_re <= 1'b0;
            if (s_axil_awvalid && !aw_full) begin
                aw_full <= 1'b1;
                aw_addr <= s_axil_awaddr;
            end
            if (s_axil_wvalid && !w_full) begin
                w_full <= 1'b1;
                w_data <= s_axil_wdata;
            end
            if (s_axil_arvalid && !ar_full) begin
                ar_full <= 1'b1;
                ar_addr <= s_axil_araddr;
            end
            if (do_write) begin
                csr_we        <= 1'b1;
                csr_addr      <= aw_addr;
                csr_wdata     <= w_data;
                aw_full       <= 1'b0;
                w_full        <= 1'b0;
                s_axil_bvalid <= 1'b1;
            end else if (do_read) begin
                csr_re   <= 1'b1;
                csr_addr <= ar_addr;
                r_wait   <= 1'b1;
            end
            // csr_re is registered here, so the engine samples it one cycle
            // after do_read and its csr_rdata is valid the cycle after that
            if (r_wait && csr_re) begin
                // engine is sampling the read this cycle
            end else if (r_wait) begin
                s_axil_rvalid <= 1'b1;
                s_axil_rdata  <= csr_rdata;
                r_wait        <= 1'b0;
                ar_full       <= 1'b0;
            end
            if (s_axil_bvalid && s_axil_bready) s_axil_bvalid <= 1'b0;
            if (s_axil_rvalid && s_axil_rready) s_axil_rvalid <= 1'b0;
        end
    end
endmodule

`default_nettype wire
