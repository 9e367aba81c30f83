// Segment an image with a pixelwise `--pipeline` export from C++ (OpenVINO runtime).
//
// The graph takes the decoded image as it is (uint8, height x width x 3, RGB, any size) and
// returns the label map at that size: resizing, normalisation, padding, upsampling and arg-max all
// run inside it. This file holds no pre- or post-processing code: it hands OpenVINO the pixel
// buffer and reads the labels back. Images are binary PPM (P6) here to keep the example free of
// image libraries; in an application the buffer comes from your decoder or camera.
//
//   pixelwise export best.pt --format openvino --pipeline --outputs labels   # best.xml/.bin + best.xml.json
//   ./build/segment best.xml street.ppm street_labels.pgm [--threads 2]
//
// Writes the label map as an 8-bit PGM (class indices) and prints one JSON line with each class's
// pixel count; class names come from the export's sidecar (MODEL.json), else from the record
// inside the model. Exit status 2 on errors.
#include <openvino/openvino.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Image {
    size_t height = 0, width = 0;
    std::vector<uint8_t> rgb;  // height x width x 3
};

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(path + ": cannot open; check the path");
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// A binary PPM (P6) or PGM (P5, grey: repeated over R, G and B as pixelwise's Python runtime does),
// maxval 255: "P6 <w> <h> 255\n" then w*h*3 bytes (P5: w*h); '#' comments allowed.
Image read_ppm(const std::string& path) {
    const std::string data = read_file(path);
    size_t pos = 0;
    auto token = [&]() {
        for (;;) {
            while (pos < data.size() && std::isspace(static_cast<unsigned char>(data[pos]))) ++pos;
            if (pos < data.size() && data[pos] == '#') {
                while (pos < data.size() && data[pos] != '\n') ++pos;
                continue;
            }
            break;
        }
        size_t start = pos;
        while (pos < data.size() && !std::isspace(static_cast<unsigned char>(data[pos]))) ++pos;
        return data.substr(start, pos - start);
    };
    Image im;
    std::string magic;
    try {
        magic = token();
        if (magic != "P6" && magic != "P5") throw std::runtime_error("");
        im.width = std::stoul(token());
        im.height = std::stoul(token());
        if (token() != "255") throw std::runtime_error("");
    } catch (const std::exception&) {
        throw std::runtime_error(path + ": not an 8-bit binary PPM (P6) or PGM (P5); convert it, e.g. with "
                                 "'python -c \"from PIL import Image; Image.open(\\\"in.jpg\\\").convert(\\\"RGB\\\").save(\\\"in.ppm\\\")\"'");
    }
    ++pos;  // the single whitespace byte after maxval
    const size_t channels = magic == "P6" ? 3 : 1;
    const size_t size = im.width * im.height * channels;
    if (im.width == 0 || im.height == 0 || pos > data.size() || data.size() - pos < size)
        throw std::runtime_error(path + ": truncated " + (channels == 3 ? "PPM" : "PGM") +
                                 " (fewer pixels than its header declares); re-export it");
    if (channels == 3) {
        im.rgb.assign(data.begin() + static_cast<long>(pos), data.begin() + static_cast<long>(pos + size));
    } else {
        im.rgb.resize(size * 3);
        for (size_t i = 0; i < size; ++i) im.rgb[3 * i] = im.rgb[3 * i + 1] = im.rgb[3 * i + 2] = data[pos + i];
    }
    return im;
}

// The "names" array of the sidecar JSON (strings only; \" and \\ escapes handled).
std::vector<std::string> class_names(const std::string& json, const std::string& where) {
    const size_t key = json.find("\"names\"");
    if (key == std::string::npos) throw std::runtime_error(where + ": no class names; re-export the model");
    std::vector<std::string> names;
    size_t i = json.find('[', key) + 1;
    while (i < json.size() && json[i] != ']') {
        if (json[i] == '"') {
            std::string name;
            for (++i; i < json.size() && json[i] != '"'; ++i) name += json[i] == '\\' ? json[++i] : json[i];
            names.push_back(name);
        }
        ++i;
    }
    return names;
}

void write_pgm(const std::string& path, size_t height, size_t width, const uint8_t* pixels) {
    const std::string tmp = path + ".partial";
    {
        std::ofstream out(tmp, std::ios::binary);
        out << "P5\n" << width << " " << height << "\n255\n";
        out.write(reinterpret_cast<const char*>(pixels), static_cast<std::streamsize>(height * width));
        if (!out) throw std::runtime_error(path + ": cannot write; check the folder exists and is writable");
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0)  // readers never see half a file
        throw std::runtime_error(path + ": cannot write; check the folder is writable");
}

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (char c : s) out += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
    return out + "\"";
}

int run(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    int threads = 0;
    for (size_t i = 0; i + 1 < args.size(); ++i)
        if (args[i] == "--threads") {
            const std::string& n = args[i + 1];
            if (n.empty() || n.size() > 4 || n.find_first_not_of("0123456789") != std::string::npos ||
                (threads = std::stoi(n)) < 1)
                throw std::runtime_error("--threads " + n + ": pass a whole number of threads, 1 or more");
            args.erase(args.begin() + static_cast<long>(i), args.begin() + static_cast<long>(i) + 2);
            break;
        }
    if (args.size() != 3) {
        std::cerr << "usage: segment MODEL.xml|MODEL.onnx IMAGE.ppm LABELS.pgm [--threads N]\n";
        return 2;
    }
    const std::string &model_path = args[0], &image_path = args[1], &out_path = args[2];
    ov::Core core;
    const std::shared_ptr<ov::Model> model = core.read_model(model_path);
    const std::string sidecar = model_path + ".json";
    std::string meta;
    try {
        meta = read_file(sidecar);
    } catch (const std::exception&) {
        // Without the sidecar, the record inside the model: pixelwise writes it into the IR's
        // rt_info, and OpenVINO reads an ONNX file's metadata_props into rt_info["framework"].
        if (model->has_rt_info("model_info", "pixelwise"))
            meta = model->get_rt_info<std::string>("model_info", "pixelwise");
        else if (model->has_rt_info("framework", "pixelwise"))
            meta = model->get_rt_info<std::string>("framework", "pixelwise");
        else
            throw std::runtime_error(sidecar + ": metadata not found, and " + model_path + " carries none; keep "
                                     "the .json that 'pixelwise export' writes next to the model");
    }
    if (meta.find("\"graph\": \"pipeline\"") == std::string::npos)
        throw std::runtime_error(model_path + ": this export takes normalised float tensors; re-export it with "
                                 "'pixelwise export MODEL --pipeline' to feed it images directly");
    const std::vector<std::string> names = class_names(meta, sidecar);
    const Image image = read_ppm(image_path);

    ov::AnyMap config{ov::hint::inference_precision(ov::element::f32),  // the precision the export check verified
                      ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY)};
    if (threads > 0) config.emplace(ov::inference_num_threads(threads));
    ov::CompiledModel compiled = core.compile_model(model, "CPU", config);
    ov::InferRequest request = compiled.create_infer_request();
    // The pixels as they are: no resize, no normalisation, no layout change.
    ov::Tensor input(ov::element::u8, {image.height, image.width, 3}, const_cast<uint8_t*>(image.rgb.data()));
    request.set_input_tensor(input);
    request.infer();
    const ov::Tensor labels = request.get_tensor("labels");  // uint8, height x width
    const uint8_t* lab = labels.data<const uint8_t>();
    write_pgm(out_path, image.height, image.width, lab);

    std::vector<size_t> counts(names.size(), 0);
    for (size_t i = 0; i < labels.get_size(); ++i)
        if (lab[i] < counts.size()) ++counts[lab[i]];
    std::cout << "{\"image\": " << json_string(image_path) << ", \"width\": " << image.width
              << ", \"height\": " << image.height << ", \"classes\": [";
    for (size_t c = 0; c < names.size(); ++c)
        std::cout << (c ? ", " : "") << "{\"name\": " << json_string(names[c]) << ", \"pixels\": " << counts[c] << "}";
    std::cout << "]}\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";  // one line: the file and the fix
        return 2;
    }
}
