// C ABI shim around the Verilator models of rtl/atomik_engine.v.
//
// One model per bank count (1, 2, 4, 8), each verilated with its own
// --prefix. Rust drives the clock: every call to atomik_sim_cycle() applies
// the inputs, evaluates with the clock low, captures the pre-edge outputs (the
// values a valid/ready handshake is decided on), then raises and lowers the
// clock and captures the post-edge CSR read data.
#include <cstdint>
#include <cstring>
#include <new>

#include "verilated.h"
#include "Vatomik_b1.h"
#include "Vatomik_b2.h"
#include "Vatomik_b4.h"
#include "Vatomik_b8.h"

extern "C" {

struct AtomikSimIn {
    uint64_t in_data[16];   // lane l: words [2l] (bits 63:0) and [2l+1] (bits 127:64)
    uint32_t in_mask;
    uint32_t csr_wdata;
    uint8_t rst;
    uint8_t in_valid;
    uint8_t out_ready;
    uint8_t csr_we;
    uint8_t csr_re;
    uint8_t csr_addr;
    uint8_t pad[2];
};

struct AtomikSimOut {
    uint64_t out_data[16];
    uint32_t out_mask;
    uint32_t csr_rdata;     // after the clock edge
    uint8_t in_ready;       // before the clock edge
    uint8_t out_valid;      // before the clock edge
    uint8_t out_last;       // before the clock edge
    uint8_t pad[5];
};

}  // extern "C"

namespace {

struct ModelBase {
    virtual ~ModelBase() {}
    virtual void cycle(const AtomikSimIn* in, AtomikSimOut* out) = 0;
};

template <typename T, int LANES>
struct Model : ModelBase {
    VerilatedContext ctx;
    T* top;

    Model() : top(nullptr) {
        top = new T{&ctx};
        top->clk = 0;
        top->eval();
    }
    ~Model() override {
        top->final();
        delete top;
    }

    void cycle(const AtomikSimIn* in, AtomikSimOut* out) override {
        top->rst = in->rst ? 1 : 0;
        top->in_valid = in->in_valid ? 1 : 0;
        top->out_ready = in->out_ready ? 1 : 0;
        top->in_mask = in->in_mask & ((1u << LANES) - 1u);
        for (int w = 0; w < LANES * 4; ++w) {
            uint64_t word = in->in_data[w / 2];
            top->in_data[w] = static_cast<uint32_t>((w & 1) ? (word >> 32) : word);
        }
        top->csr_addr = in->csr_addr;
        top->csr_we = in->csr_we ? 1 : 0;
        top->csr_wdata = in->csr_wdata;
        top->csr_re = in->csr_re ? 1 : 0;
        top->clk = 0;
        top->eval();
        out->in_ready = top->in_ready;
        out->out_valid = top->out_valid;
        out->out_last = top->out_last;
        out->out_mask = top->out_mask;
        std::memset(out->out_data, 0, sizeof(out->out_data));
        for (int w = 0; w < LANES * 4; ++w) {
            uint64_t part = static_cast<uint64_t>(top->out_data[w]);
            out->out_data[w / 2] |= (w & 1) ? (part << 32) : part;
        }
        top->clk = 1;
        top->eval();
        top->clk = 0;
        top->eval();
        out->csr_rdata = top->csr_rdata;
    }
};

}  // namespace

extern "C" {

// Returns nullptr for an unsupported bank count or on allocation failure.
void* atomik_sim_new(uint32_t banks) {
    try {
        switch (banks) {
            case 1: return static_cast<ModelBase*>(new Model<Vatomik_b1, 1>());
            case 2: return static_cast<ModelBase*>(new Model<Vatomik_b2, 2>());
            case 4: return static_cast<ModelBase*>(new Model<Vatomik_b4, 4>());
            case 8: return static_cast<ModelBase*>(new Model<Vatomik_b8, 8>());
            default: return nullptr;
        }
    } catch (...) {
        return nullptr;
    }
}

void atomik_sim_free(void* sim) {
    delete static_cast<ModelBase*>(sim);
}

void atomik_sim_cycle(void* sim, const AtomikSimIn* in, AtomikSimOut* out) {
    static_cast<ModelBase*>(sim)->cycle(in, out);
}

uint32_t atomik_sim_abi_size(void) {
    return static_cast<uint32_t>(sizeof(AtomikSimIn) * 1000 + sizeof(AtomikSimOut));
}

}  // extern "C"
