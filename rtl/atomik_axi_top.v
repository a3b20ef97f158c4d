// atomik_axi_top -- the engine with AXI interfaces for a Zynq block design:
// AXI4-Lite control (through axil_csr_bridge), an AXI4-Stream op input for
// an AXI DMA MM2S channel and an AXI4-Stream result output with TLAST for
// its S2MM channel.
//
// Stream data width is 128 * NUM_BANKS bits (128 / 256 / 512 / 1024), which
// the AXI DMA supports directly. Op beats must be whole (the driver pads
// with NOP lanes); TKEEP / TLAST of the op stream are not used. The result
// stream's TKEEP is all ones; TLAST is set every RESULT_PACKET result beats
// (register 0x24), which the driver programs before each transfer so the
// S2MM channel completes.
//
// Not synthesised or run on a board; see rtl/README.md.
`timescale 1ns / 1ps
`default_nettype none

module atomik_axi_top #(
    parameter integer NUM_BANKS      = 4,
    parameter integer SLOTS_PER_BANK = 256
) (
    input  wire                     aclk,
    input  wire                     aresetn,

    input  wire [7:0]               s_axil_awaddr,
    input  wire                     s_axil_awvalid,
    output wire                     s_axil_awready,
    input  wire [31:0]              s_axil_wdata,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [3:0]               s_axil_wstrb,   // ignored: full-word writes only
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire                     s_axil_wvalid,
    output wire                     s_axil_wready,
    output wire [1:0]               s_axil_bresp,
    output wire                     s_axil_bvalid,
    input  wire                     s_axil_bready,
    input  wire [7:0]               s_axil_araddr,
    input  wire                     s_axil_arvalid,
    output wire                     s_axil_arready,
    output wire [31:0]              s_axil_rdata,
    output wire [1:0]               s_axil_rresp,
    output wire                     s_axil_rvalid,
    input  wire                     s_axil_rready,

    input  wire [NUM_BANKS*128-1:0] s_axis_tdata,
    input  wire                     s_axis_tvalid,
    output wire                     s_axis_tready,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire                     s_axis_tlast,   // ignored
    /* verilator lint_on UNUSEDSIGNAL */

    output wire [NUM_BANKS*128-1:0] m_axis_tdata,
    output wire [NUM_BANKS*16-1:0]  m_axis_tkeep,
    output wire                     m_axis_tvalid,
    input  wire                     m_axis_tready,
    output wire                     m_axis_tlast
);
    wire        rst = ~aresetn;
    wire [7:0]  csr_addr;
    wire        csr_we, csr_re;
    wire [31:0] csr_wdata, csr_rdata;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [NUM_BANKS-1:0] out_mask;   // empty lanes are all-zero words anyway
    /* verilator lint_on UNUSEDSIGNAL */

    axil_csr_bridge bridge (
        .clk(aclk), .rst(rst),
        .s_axil_awaddr(s_axil_awaddr), .s_axil_awvalid(s_axil_awvalid),
        .s_axil_awready(s_axil_awready),
        .s_axil_wdata(s_axil_wdata), .s_axil_wvalid(s_axil_wvalid),
        .s_axil_wready(s_axil_wready),
        .s_axil_bvalid(s_axil_bvalid), .s_axil_bready(s_axil_bready),
        .s_axil_bresp(s_axil_bresp),
        .s_axil_araddr(s_axil_araddr), .s_axil_arvalid(s_axil_arvalid),
        .s_axil_arready(s_axil_arready),
        .s_axil_rdata(s_axil_rdata), .s_axil_rvalid(s_axil_rvalid),
        .s_axil_rready(s_axil_rready), .s_axil_rresp(s_axil_rresp),
        .csr_addr(csr_addr), .csr_we(csr_we), .csr_wdata(csr_wdata),
        .csr_re(csr_re), .csr_rdata(csr_rdata)
    );

    atomik_engine #(.NUM_BANKS(NUM_BANKS), .SLOTS_PER_BANK(SLOTS_PER_BANK)) engine (
        .clk(aclk), .rst(rst),
        .in_valid(s_axis_tvalid), .in_ready(s_axis_tready),
        .in_data(s_axis_tdata), .in_mask({NUM_BANKS{1'b1}}),
        .out_valid(m_axis_tvalid), .out_ready(m_axis_tready),
        .out_data(m_axis_tdata), .out_mask(out_mask), .out_last(m_axis_tlast),
        .csr_addr(csr_addr), .csr_we(csr_we), .csr_wdata(csr_wdata),
        .csr_re(csr_re), .csr_rdata(csr_rdata)
    );

    assign m_axis_tkeep = {NUM_BANKS*16{1'b1}};
endmodule

`default_nettype wire
